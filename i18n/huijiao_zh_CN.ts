<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
    <context>
        <name>@default</name>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="291" />
            <source>Layer {name} is not valid and cannot be packaged.</source>
            <translation>图层 {name} 无效，无法打包。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="303" />
            <source>Cannot write the GeoPackage {path}: {error}</source>
            <translation>无法写入 GeoPackage {path}：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="185" />
            <source>Packaging was canceled.</source>
            <translation>打包已取消。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="333" />
            <source>Cannot write a feature of layer {name}: {error}</source>
            <translation>无法写入图层 {name} 的要素：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="413" />
            <source>The dataset id '{value}' is not valid.</source>
            <translation>数据集标识“{value}”无效。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="415" />
            <source>The region code '{value}' is not a GB/T 2260 code (2, 4 or 6 digits).</source>
            <translation>行政区代码“{value}”不是 GB/T 2260 代码（2、4 或 6 位数字）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="421" />
            <source>The period '{value}' is not valid: use a year (2025), a half-year (2025H1) or a quarter.</source>
            <translation>期次“{value}”无效：请填写年份（2025）、半年（2025H1）或季度（2025Q3）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="427" />
            <source>The department '{value}' is unknown (zrzy or nync).</source>
            <translation>部门“{value}”未知（应为 zrzy 或 nync）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="429" />
            <source>There is no layer to package.</source>
            <translation>没有可打包的图层。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="432" />
            <source>Two layers have the same name in the package.</source>
            <translation>数据包中有两个图层同名。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="435" />
            <source>The layer name '{value}' is not valid in a package.</source>
            <translation>图层名称“{value}”不能用于数据包。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="439" />
            <source>The attachment {path} does not exist.</source>
            <translation>附件 {path} 不存在。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="441" />
            <source>The package cannot be built.</source>
            <translation>无法生成数据包。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="450" />
            <source>The coordinate reference system of the package is not valid.</source>
            <translation>数据包的坐标参考系无效。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/package.py" line="456" />
            <source>The data file name '{value}' is not valid.</source>
            <translation>数据文件名“{value}”无效。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="76" />
            <source>The package has no manifest.json.</source>
            <translation>数据包中没有 manifest.json。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="124" />
            <source>The file is not a readable package: {error}</source>
            <translation>该文件不是可读取的数据包：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="80" />
            <source>The manifest.json of the package is not valid JSON.</source>
            <translation>数据包的 manifest.json 不是有效的 JSON。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="110" />
            <source>The package {path} does not exist.</source>
            <translation>数据包 {path} 不存在。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="113" />
            <source>The package hash does not match: the file was changed or copied incompletely. Copy it again.</source>
            <translation>数据包哈希值不一致：文件已被修改或拷贝不完整，请重新拷贝。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="113" />
            <source>expected {expected}, found {found}</source>
            <translation>应为 {expected}，实为 {found}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="156" />
            <source>Unsafe path in the package: {name}</source>
            <translation>数据包中有不安全的路径：{name}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="162" />
            <source>Suspicious compression ratio of {name}</source>
            <translation>{name} 的压缩比异常</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="164" />
            <source>The package expands to more than the allowed size.</source>
            <translation>数据包解压后超过允许的大小。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="175" />
            <source>The manifest has no '{key}'.</source>
            <translation>清单中缺少“{key}”。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="186" />
            <source>The file {name} listed in the manifest is missing.</source>
            <translation>清单列出的文件 {name} 不存在。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="197" />
            <source>The size of {name} does not match the manifest.</source>
            <translation>{name} 的大小与清单不一致。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="199" />
            <source>The sha256 of {name} does not match the manifest.</source>
            <translation>{name} 的 sha256 与清单不一致。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="202" />
            <source>The file {name} is not listed in the manifest.</source>
            <translation>文件 {name} 未在清单中列出。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="135" />
            <source>The package is damaged or was modified; ask the sender for a new copy.</source>
            <translation>数据包已损坏或被修改，请向发送方索取新的副本。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="130" />
            <source>The copy on {folder} is damaged; check the disk and try again.</source>
            <translation>{folder} 上的副本已损坏，请检查磁盘后重试。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="135" />
            <source>Cannot write to {folder}: {error}. Check that the disk is plugged in and writable.</source>
            <translation>无法写入 {folder}：{error}。请检查磁盘是否已插入且可写。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="232" />
            <source>This package was already imported on {when} into {path}; it is not imported again.</source>
            <translation>该数据包已于 {when} 导入到 {path}，不再重复导入。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="93" />
            <source>The layer {name} of the package cannot be opened.</source>
            <translation>无法打开数据包中的图层 {name}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/workflow.py" line="87" />
            <source>Unknown patch status: {value}</source>
            <translation>未知的图斑状态：{value}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/workflow.py" line="100" />
            <source>Unknown verification result: {value}</source>
            <translation>未知的核查结果：{value}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/workflow.py" line="114" />
            <source>A patch status cannot be empty.</source>
            <translation>图斑状态不能为空。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/workflow.py" line="116" />
            <source>Status change {old} → {new} is not allowed.</source>
            <translation>不允许将状态由“{old}”改为“{new}”。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/workflow.py" line="122" />
            <source>Status {new} needs a verification result (属实/不属实/存疑).</source>
            <translation>状态“{new}”需要填写核查结果（属实/不属实/存疑）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="56" />
            <source>Huijiao settings</source>
            <translation>汇交联动设置</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="68" />
            <source>User</source>
            <translation>用户</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="124" />
            <source>Department</source>
            <translation>部门</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="79" />
            <source>GB/T 2260 code of your province (2 digits), city (4) or county (6)</source>
            <translation>所在省（2 位）、市（4 位）或县（6 位）的 GB/T 2260 行政区划代码</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="73" />
            <source>Region code</source>
            <translation>行政区划代码</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="86" />
            <source>Unit name</source>
            <translation>单位名称</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="89" />
            <source>Exchange server</source>
            <translation>汇交服务器</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="94" />
            <source>Server URL</source>
            <translation>服务器地址</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="97" />
            <source>Credentials are kept in the QGIS authentication manager; only the id of the configuration is saved.</source>
            <translation>凭据保存在 QGIS 认证管理器中，设置里只保存认证配置的 ID。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="103" />
            <source>Authentication</source>
            <translation>认证配置</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="146" />
            <source>Display and configuration files</source>
            <translation>显示与配置文件</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_common.py" line="88" />
            <source>Area unit</source>
            <translation>面积单位</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="159" />
            <source>JSON files (*.json);;All files (*)</source>
            <translation>JSON 文件 (*.json);;所有文件 (*)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="280" />
            <source>Catalog override file</source>
            <translation>目录覆盖文件</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="280" />
            <source>Rules profile</source>
            <translation>规则配置文件</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="245" />
            <source>2, 4 or 6 digits</source>
            <translation>须为 2、4 或 6 位数字</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="248" />
            <source>Not in the region list; saved as typed.</source>
            <translation>不在行政区列表中，将按输入保存。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="269" />
            <source>The region code must have 2, 4 or 6 digits (GB/T 2260), for example 610100.</source>
            <translation>行政区划代码须为 2、4 或 6 位数字（GB/T 2260），例如 610100。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="273" />
            <source>The exchange server URL must start with http:// or https:// and name a host.</source>
            <translation>汇交服务器地址须以 http:// 或 https:// 开头并包含主机名。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="286" />
            <source>{label}: file not found: {path}</source>
            <translation>{label}：文件不存在：{path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/base.py" line="18" />
            <source>Farmland comparison</source>
            <translation>耕地比对</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="180" />
            <source>Compare the farmland boundaries of the natural-resources and the agriculture departments by policy rules and list every difference with its ellipsoidal area.</source>
            <translation>按政策规则比对自然资源与农业农村部门的耕地边界，逐一列出差异图斑及其椭球面积。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/base.py" line="19" />
            <source>Change patches</source>
            <translation>变化图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="566" />
            <source>Shared layers</source>
            <translation>共享图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="62" />
            <source>Dataset</source>
            <translation>数据集</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="124" />
            <source>State</source>
            <translation>状态</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_year_bar.py" line="30" />
            <source>Year</source>
            <translation>年度</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="435" />
            <source>Result submission</source>
            <translation>成果汇交</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="104" />
            <source>Submit results to the exchange server and keep its signed receipt, or export an offline package when the server cannot be reached.</source>
            <translation>将成果提交到汇交服务器并保存其签名回执；服务器无法连接时，导出离线数据包。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="48" />
            <source>Natural resources</source>
            <translation>自然资源</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="49" />
            <source>Agriculture and rural affairs</source>
            <translation>农业农村</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="56" />
            <source>Mu</source>
            <translation>亩</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="57" />
            <source>Hectare</source>
            <translation>公顷</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="58" />
            <source>Square metre (m²)</source>
            <translation>平方米（m²）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="67" />
            <source>Unknown region</source>
            <translation>未知行政区</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="82" />
            <source>not set</source>
            <translation>未设置</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="84" />
            <source>Department: {department}</source>
            <translation>部门：{department}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="87" />
            <source>Region: {region}</source>
            <translation>行政区：{region}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="88" />
            <source>Unit: {unit}</source>
            <translation>单位：{unit}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="89" />
            <source>Exchange server: {url}</source>
            <translation>汇交服务器：{url}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="90" />
            <source>Area unit: {unit}</source>
            <translation>面积单位：{unit}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/plugin.py" line="178" />
            <source>Huijiao</source>
            <translation>汇交联动</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/plugin.py" line="138" />
            <source>Settings…</source>
            <translation>设置…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/plugin.py" line="142" />
            <source>Department, region, exchange server and display settings</source>
            <translation>部门、行政区、汇交服务器与显示设置</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/provider.py" line="18" />
            <source>Huijiao farmland exchange</source>
            <translation>汇交联动</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/spec.py" line="62" />
            <source>{title}: {count} pieces, {mu} mu</source>
            <translation>{title} {count} 块，{mu} 亩</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/statistics.py" line="104" />
            <source>Block {size} mu</source>
            <translation>连片 {size} 亩</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/statistics.py" line="118" />
            <source>HSF coverage of PBF</source>
            <translation>高标准农田覆盖率</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/statistics.py" line="158" />
            <source>Comparison statistics</source>
            <translation>比对统计</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="113" />
            <source>The exchange server answered with HTTP {status}.</source>
            <translation>汇交服务器返回 HTTP {status}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="150" />
            <source>The secure connection to {url} failed: check the server certificate and the proxy settings.</source>
            <translation>与 {url} 的安全连接失败：请检查服务器证书和代理设置。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="160" />
            <source>The proxy refused the connection to {url}: check the proxy settings of QGIS.</source>
            <translation>代理拒绝了到 {url} 的连接：请检查 QGIS 的代理设置。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="162" />
            <source>The exchange server {url} did not answer in time: check the network and try again.</source>
            <translation>汇交服务器 {url} 未及时响应：请检查网络后重试。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="164" />
            <source>Cannot reach the exchange server {url}: check the network connection and the server address in the plugin settings.</source>
            <translation>无法连接汇交服务器 {url}：请检查网络连接和插件设置中的服务器地址。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="406" />
            <source>No account is configured: choose an authentication configuration in the plugin settings.</source>
            <translation>尚未配置账号：请在插件设置中选择认证配置。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="233" />
            <source>The authentication configuration {id} cannot be read: check it in the QGIS authentication manager (the master password may be needed).</source>
            <translation>无法读取认证配置 {id}：请在 QGIS 认证管理器中检查（可能需要输入主密码）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="249" />
            <source>The authentication configuration {id} has no user name/password or token.</source>
            <translation>认证配置 {id} 中没有用户名/密码或令牌。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="358" />
            <source>No exchange server address is set in the plugin settings.</source>
            <translation>插件设置中未填写汇交服务器地址。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="512" />
            <source>The exchange server did not send its signing key.</source>
            <translation>汇交服务器未发送签名公钥。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="549" />
            <source>The server's answer holds no signed receipt.</source>
            <translation>服务器的应答中没有已签名的回执。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="552" />
            <source>The receipt signature is not valid: the receipt was altered or not issued by the pinned server ({fingerprint}). Do not rely on it; contact the server administrator.</source>
            <translation>回执签名无效：回执已被篡改，或并非由已固定的服务器密钥（{fingerprint}）签发。请勿采信，并联系服务器管理员。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="567" />
            <source>The receipt is for another package than the one submitted.</source>
            <translation>该回执对应的不是本次提交的数据包。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/upload.py" line="113" />
            <source>The exchange server did not create the upload.</source>
            <translation>汇交服务器未能创建上传任务。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/upload.py" line="122" />
            <source>The upload is no longer on the server; it starts again.</source>
            <translation>服务器上已没有该上传任务，将重新上传。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/upload.py" line="206" />
            <source>The upload was canceled.</source>
            <translation>上传已取消。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/upload.py" line="208" />
            <source>The upload is paused; it resumes where it stopped.</source>
            <translation>上传已暂停，将从中断处继续。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="361" />
            <source>The download was canceled.</source>
            <translation>下载已取消。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/client.py" line="239" />
            <source>The download is paused.</source>
            <translation>下载已暂停。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/client.py" line="277" />
            <source>The downloaded package is damaged (sha256 does not match); download it again.</source>
            <translation>下载的数据包已损坏（sha256 不一致），请重新下载。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/atlas.py" line="310" />
            <source>Cannot open the change-patch layer of {path}</source>
            <translation>无法打开 {path} 中的变化图斑图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/atlas.py" line="313" />
            <source>Select at least one change patch for the atlas.</source>
            <translation>请至少选择一个变化图斑生成核查图。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/atlas.py" line="316" />
            <source>No change patches to print.</source>
            <translation>没有可输出的变化图斑。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/atlas.py" line="360" />
            <source>The atlas could not be written: {error}</source>
            <translation>核查图无法写出：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/export.py" line="70" />
            <source>The package folder is not empty: {path}</source>
            <translation>外业包文件夹不是空的：{path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/export.py" line="72" />
            <source>Select at least one change patch for the field package.</source>
            <translation>请至少选择一个变化图斑生成外业核查包。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="438" />
            <source>No change patch with id {uuid}</source>
            <translation>不存在标识为 {uuid} 的变化图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/export.py" line="163" />
            <source>Field verification {name}</source>
            <translation>外业核查 {name}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/project.py" line="115" />
            <source>Basemap</source>
            <translation>底图</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/project.py" line="129" />
            <source>The field package GeoPackage cannot be opened: {path}</source>
            <translation>无法打开外业核查包 GeoPackage：{path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/project.py" line="206" />
            <source>Cannot write the project {path}</source>
            <translation>无法写入工程文件 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/importer.py" line="76" />
            <source>{applied} patches updated, {unchanged} unchanged, {conflicts} conflicts, {rejected} refused, {photos} photos added, {missing} photos missing, {new} new patches</source>
            <translation>更新图斑 {applied} 个，未变化 {unchanged} 个，冲突 {conflicts} 个，拒绝 {rejected} 个，新增照片 {photos} 张，缺失照片 {missing} 张，新图斑 {new} 个</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/importer.py" line="96" />
            <source>Unsafe path in package: {name}</source>
            <translation>核查包中存在不安全的路径：{name}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/importer.py" line="111" />
            <source>No field package GeoPackage found in {path}</source>
            <translation>在 {path} 中未找到外业核查包的 GeoPackage</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="180" />
            <source>Cannot open {path}</source>
            <translation>无法打开 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/importer.py" line="167" />
            <source>Field package not found: {path}</source>
            <translation>未找到外业核查包：{path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/importer.py" line="195" />
            <source>{path} is not a field package (no package id).</source>
            <translation>{path} 不是外业核查包（缺少核查包标识）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/importer.py" line="199" />
            <source>This field package was already imported on {when} by {who}; nothing was changed.</source>
            <translation>该外业核查包已于 {when} 由 {who} 导入，本次未做任何修改。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/importer.py" line="220" />
            <source>patch deleted at the desk</source>
            <translation>图斑已在内业删除</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/importer.py" line="241" />
            <source>changed at the desk and in the field since export</source>
            <translation>导出后内业和外业均修改了该图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/from_comparison.py" line="119" />
            <source>{created} patches created, {matched} already present, {dropped} under the minimum area dropped</source>
            <translation>新建图斑 {created} 个，已存在 {matched} 个，小于最小上图面积而舍去 {dropped} 个</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/from_comparison.py" line="187" />
            <source>The comparison output has no rule_id field; choose the patch type to use.</source>
            <translation>比对结果没有 rule_id 字段，请选择要使用的图斑类型。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="468" />
            <source>Unknown patch type: {value}</source>
            <translation>未知的图斑类型：{value}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="63" />
            <source>Change-patch GeoPackage not found: {path}</source>
            <translation>未找到变化图斑 GeoPackage：{path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="67" />
            <source>{path} is not a change-patch GeoPackage (layer BGHTB missing).</source>
            <translation>{path} 不是变化图斑 GeoPackage（缺少 BGHTB 图层）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="97" />
            <source>File already exists: {path}</source>
            <translation>文件已存在：{path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="102" />
            <source>Change patches need the county's projected (Gauss-Krüger) CRS.</source>
            <translation>变化图斑须使用县级投影坐标系（高斯-克吕格）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="378" />
            <source>No 6-digit county code for a new patch: load XZQ/CJDCQ or set the county code.</source>
            <translation>新图斑缺少 6 位县级代码：请加载行政区（XZQ）/村级调查区（CJDCQ）图层或设置县级代码。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="477" />
            <source>A change patch needs a polygon geometry.</source>
            <translation>变化图斑必须是面状图形。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="455" />
            <source>The identity of a patch ({field}) cannot be changed.</source>
            <translation>图斑的标识字段（{field}）不能修改。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="472" />
            <source>Unknown patch fields: {fields}</source>
            <translation>未知的图斑字段：{fields}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/edits.py" line="92" />
            <source>not found</source>
            <translation>未找到</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/attachments.py" line="38" />
            <source>Attachment not found: {path}</source>
            <translation>未找到附件：{path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/store.py" line="536" />
            <source>Unknown patch numbers or ids: {ids}</source>
            <translation>未知的图斑编号或标识：{ids}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="148" />
            <source>The dataset {id} is not in the shared-data catalog.</source>
            <translation>共享清单中没有数据集 {id}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="180" />
            <source>The region code {code} is not valid.</source>
            <translation>行政区代码 {code} 无效。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="185" />
            <source>The package region {code} is outside your region {own}: you cannot submit it.</source>
            <translation>数据包行政区 {code} 不在您的辖区 {own} 内，不能提交。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/layer_tasks.py" line="111" />
            <source>The layer {name} cannot be read.</source>
            <translation>无法读取图层 {name}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="212" />
            <source>The layer {name} has no features.</source>
            <translation>图层 {name} 没有要素。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="260" />
            <source>{n} features of {name} have no geometry.</source>
            <translation>{name} 中有 {n} 个要素没有几何。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="269" />
            <source>{n} features of {name} have an invalid geometry.</source>
            <translation>{name} 中有 {n} 个要素几何无效。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="280" />
            <source>{n} features of {name} lie outside your region ({field}).</source>
            <translation>{name} 中有 {n} 个要素位于您的辖区之外（{field}）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="291" />
            <source>{n} features of {name} lie outside the package region ({field}).</source>
            <translation>{name} 中有 {n} 个要素位于数据包行政区之外（{field}）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="303" />
            <source>{n} features of {name} have no value in the required field {field}.</source>
            <translation>{name} 中有 {n} 个要素的必填字段 {field} 为空。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="316" />
            <source>{n} features of {name} overlap each other; the layer must be a partition.</source>
            <translation>{name} 中有 {n} 个要素相互重叠；该图层必须无缝无叠。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="351" />
            <source>The layer {name} lacks the required fields: {fields}.</source>
            <translation>图层 {name} 缺少必填字段：{fields}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/preflight.py" line="445" />
            <source>The catalog checks could not run on {name}: {error}</source>
            <translation>无法对 {name} 执行共享清单检查：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/receipts.py" line="109" />
            <source>The exchange server presents another signing key than the one recorded on first contact ({pinned}). Receipts cannot be trusted: ask the server administrator whether the key was changed, then remove the recorded key in the settings.</source>
            <translation>汇交服务器出示的签名密钥与首次连接时记录的不同（{pinned}）。回执不可信：请向服务器管理员确认密钥是否已更换，然后在设置中删除已记录的密钥。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="159" />
            <source>Canceled.</source>
            <translation>已取消。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="155" />
            <source>Comparison failed: {error}</source>
            <translation>比对失败：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="196" />
            <source>Rule</source>
            <translation>规则</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="240" />
            <source>Fill inputs from recognised layers</source>
            <translation>按识别的图层填充输入</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/spec.py" line="119" />
            <source>Pieces thinner than this everywhere are digitising noise between departments; 0 = off.</source>
            <translation>处处窄于此宽度的碎片视为部门间数字化误差；0 = 关闭。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="74" />
            <source>Patches closer than this belong to one contiguous block.</source>
            <translation>间距小于此值的图斑归为同一连片块。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="74" />
            <source>Contiguity tolerance (m)</source>
            <translation>连片容差（米）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="73" />
            <source>Farmland in DLTB</source>
            <translation>地类图斑中的耕地</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="73" />
            <source>Permanent basic farmland</source>
            <translation>永久基本农田</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Base layer</source>
            <translation>基础图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="143" />
            <source>County</source>
            <translation>县级</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="143" />
            <source>Township</source>
            <translation>乡镇级</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="143" />
            <source>Village</source>
            <translation>村级</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="143" />
            <source>Statistics by</source>
            <translation>统计级别</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="255" />
            <source>Run</source>
            <translation>运行</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="110" />
            <source>Cancel</source>
            <translation>取消</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="225" />
            <source>Export xlsx…</source>
            <translation>导出 xlsx…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/wdg_preset_params.py" line="70" />
            <source>Empty = the rule profile's default shown in grey.</source>
            <translation>留空 = 使用灰色显示的规则配置默认值。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="370" />
            <source>Missing input layers: {roles}</source>
            <translation>缺少输入图层：{roles}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="169" />
            <source>Running…</source>
            <translation>正在运行…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="465" />
            <source>Statistics written to {path}</source>
            <translation>统计已写入 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="469" />
            <source>Export statistics</source>
            <translation>导出统计</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="100" />
            <source>Manage change patches: create them from comparisons or by marking, send them to field verification and record the verified results.</source>
            <translation>管理变化图斑：由比对结果生成或手工标记，下发外业核查，并记录核查结果。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="116" />
            <source>New…</source>
            <translation>新建…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="118" />
            <source>Add to map</source>
            <translation>添加到地图</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="120" />
            <source>Patches:</source>
            <translation>图斑库：</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_filters.py" line="32" />
            <source>All types</source>
            <translation>全部类型</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_filters.py" line="36" />
            <source>All statuses</source>
            <translation>全部状态</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_filters.py" line="40" />
            <source>Region code prefix (county/township/village)</source>
            <translation>行政区代码前缀（县/乡/村）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_filters.py" line="47" />
            <source>no limit</source>
            <translation>不限</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="353" />
            <source>Type / status</source>
            <translation>类型 / 状态</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="71" />
            <source>Region</source>
            <translation>行政区</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_filters.py" line="55" />
            <source>Area</source>
            <translation>面积</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="196" />
            <source>Count</source>
            <translation>数量</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="162" />
            <source>Details</source>
            <translation>详情</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="163" />
            <source>Totals</source>
            <translation>统计</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="172" />
            <source>Zoom to</source>
            <translation>缩放至</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="91" />
            <source>Set status</source>
            <translation>设置状态</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="174" />
            <source>Mark patch</source>
            <translation>标记图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="82" />
            <source>Refresh</source>
            <translation>刷新</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="252" />
            <source>New change-patch GeoPackage</source>
            <translation>新建变化图斑 GeoPackage</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="386" />
            <source>{shown} of {total} patches shown</source>
            <translation>显示 {shown} / {total} 个图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="412" />
            <source>All patches</source>
            <translation>全部图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="176" />
            <source>{done} patches set to {status}</source>
            <translation>{done} 个图斑已设为{status}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="180" />
            <source>{n} refused: {reason}</source>
            <translation>{n} 个被拒绝：{reason}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="290" />
            <source>Open or create a change-patch GeoPackage first.</source>
            <translation>请先打开或新建变化图斑 GeoPackage。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="275" />
            <source>loaded</source>
            <translation>已加载</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="108" />
            <source>found</source>
            <translation>已找到</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="108" />
            <source>missing</source>
            <translation>缺失</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_check_findings.py" line="33" />
            <source>error</source>
            <translation>错误</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_check_findings.py" line="33" />
            <source>warning</source>
            <translation>警告</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="156" />
            <source>Scan folder or file…</source>
            <translation>扫描文件夹或文件…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="160" />
            <source>Scan a folder…</source>
            <translation>扫描文件夹…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="161" />
            <source>Scan a file or FileGDB…</source>
            <translation>扫描文件或 FileGDB…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="164" />
            <source>From PostGIS connection…</source>
            <translation>从 PostGIS 连接…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="171" />
            <source>Load 一张图</source>
            <translation>加载一张图</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="173" />
            <source>Load every found dataset, styled, into the groups by department</source>
            <translation>按部门分组加载所有已找到的数据集(带标准样式)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="175" />
            <source>Check</source>
            <translation>检查</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="177" />
            <source>Check the selected dataset (or every found dataset) against the standard</source>
            <translation>按标准检查所选数据集(未选择时检查所有已找到的数据集)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="107" />
            <source>Source</source>
            <translation>来源</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="92" />
            <source>Severity</source>
            <translation>级别</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="196" />
            <source>Field</source>
            <translation>字段</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="196" />
            <source>Value</source>
            <translation>值</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="196" />
            <source>What to fix</source>
            <translation>修改说明</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="328" />
            <source>Confidence {value:.2f}</source>
            <translation>置信度 {value:.2f}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="335" />
            <source>Also year {year}: {source}</source>
            <translation>另有 {year} 年数据:{source}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="345" />
            <source>Unplaced layers</source>
            <translation>未识别图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="371" />
            <source>Folder with shared data</source>
            <translation>共享数据所在文件夹</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="376" />
            <source>File with shared data</source>
            <translation>共享数据文件</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="376" />
            <source>Vector data (*.gpkg *.shp *.geojson *.sqlite *.gdbtable *.kml *.gml);;All files (*)</source>
            <translation>矢量数据 (*.gpkg *.shp *.geojson *.sqlite *.gdbtable *.kml *.gml);;所有文件 (*)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="391" />
            <source>No PostGIS connection is configured; add one in the Data Source Manager.</source>
            <translation>尚未配置 PostGIS 连接,请在数据源管理器中添加。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="404" />
            <source>PostGIS connection</source>
            <translation>PostGIS 连接</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="396" />
            <source>Connection</source>
            <translation>连接</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="402" />
            <source>Cannot connect: {error}</source>
            <translation>无法连接:{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="404" />
            <source>Schema</source>
            <translation>模式</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="415" />
            <source>{layers} layers scanned: {placed} recognised, {unplaced} unplaced.</source>
            <translation>已扫描 {layers} 个图层:识别 {placed} 个,未识别 {unplaced} 个。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="428" />
            <source>Cannot read {path}: {error}</source>
            <translation>无法读取 {path}:{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="444" />
            <source>Cannot read schema {schema}: {error}</source>
            <translation>无法读取模式 {schema}:{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="494" />
            <source>Nothing to load: scan a folder, file or PostGIS schema first.</source>
            <translation>没有可加载的数据:请先扫描文件夹、文件或 PostGIS 模式。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="498" />
            <source>Loading the 一张图</source>
            <translation>正在加载一张图</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="509" />
            <source>Cannot open {source}</source>
            <translation>无法打开 {source}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="511" />
            <source>{count} layers loaded into the 一张图.</source>
            <translation>已将 {count} 个图层加载到一张图。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="548" />
            <source>Nothing to check: scan or load the shared data first.</source>
            <translation>没有可检查的数据:请先扫描或加载共享数据。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="550" />
            <source>Checking shared data</source>
            <translation>正在检查共享数据</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="556" />
            <source>Check cancelled.</source>
            <translation>检查已取消。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_check_findings.py" line="80" />
            <source>{datasets} datasets checked: {errors} errors, {warnings} warnings</source>
            <translation>已检查 {datasets} 个数据集:{errors} 个错误,{warnings} 个警告</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_check_findings.py" line="122" />
            <source>Export findings</source>
            <translation>导出检查结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="249" />
            <source>Excel workbook (*.xlsx)</source>
            <translation>Excel 工作簿 (*.xlsx)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_check_findings.py" line="152" />
            <source>Findings exported to {path}</source>
            <translation>检查结果已导出到 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/layer_tasks.py" line="45" />
            <source>{done} / {total} MB, {speed} MB/s</source>
            <translation>{done} / {total} MB，{speed} MB/s</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/layer_tasks.py" line="49" />
            <source>{seconds} s left</source>
            <translation>剩余 {seconds} 秒</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="104" />
            <source>Submit</source>
            <translation>提交</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="127" />
            <source>Receipts</source>
            <translation>回执</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="129" />
            <source>Deadlines</source>
            <translation>截止日期</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="65" />
            <source>A year (2025), a half-year (2025H1) or a quarter (2025Q3).</source>
            <translation>年份（2025）、半年（2025H1）或季度（2025Q3）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="73" />
            <source>Period</source>
            <translation>期次</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="83" />
            <source>Refresh layers</source>
            <translation>刷新图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="84" />
            <source>Validate</source>
            <translation>检查</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="92" />
            <source>Finding</source>
            <translation>问题</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="92" />
            <source>Features</source>
            <translation>要素数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="100" />
            <source>I have checked the warnings and accept them</source>
            <translation>我已查看警告并确认接受</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="109" />
            <source>Pause</source>
            <translation>暂停</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="114" />
            <source>Export offline package…</source>
            <translation>导出离线数据包…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="76" />
            <source>Submission</source>
            <translation>提交编号</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="76" />
            <source>Received</source>
            <translation>接收时间</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="77" />
            <source>Status</source>
            <translation>状态</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="86" />
            <source>Re-verify</source>
            <translation>重新校验</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="50" />
            <source>Due</source>
            <translation>截止日期</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="53" />
            <source>Offline exchange: export a package to a folder or removable disk on the Submit tab; import a package received that way here. Register an exported package with the server when the network is back, so that the evaluation counts it.</source>
            <translation>离线交换：在“提交”页将数据包导出到文件夹或移动磁盘；在此导入以该方式收到的数据包。网络恢复后，将已导出的数据包向服务器登记，以便计入成效评估。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="63" />
            <source>Import package…</source>
            <translation>导入数据包…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="66" />
            <source>Register offline package with the server…</source>
            <translation>向服务器登记离线数据包…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="62" />
            <source>Check at least one layer to submit.</source>
            <translation>请至少勾选一个要提交的图层。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="215" />
            <source>Error</source>
            <translation>错误</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="215" />
            <source>Warning</source>
            <translation>警告</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="229" />
            <source>OK</source>
            <translation>通过</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="229" />
            <source>No problem found.</source>
            <translation>未发现问题。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="126" />
            <source>Validation found {n} errors: fix them before submitting.</source>
            <translation>预检发现 {n} 个错误：请修正后再提交。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="135" />
            <source>Validation found {n} warnings: check them, then tick the box to accept them.</source>
            <translation>预检发现 {n} 个警告：请检查后勾选确认接受。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="275" />
            <source>Connecting…</source>
            <translation>正在连接…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="363" />
            <source>Paused. Press Submit to resume the upload where it stopped.</source>
            <translation>已暂停。点击“提交”将从中断处继续上传。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="372" />
            <source>Submission failed.</source>
            <translation>提交失败。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="382" />
            <source>Submitted and accepted; the receipt is verified.</source>
            <translation>已提交并被接收，回执已校验。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="384" />
            <source>The server rejected the package; see the reasons in the receipt.</source>
            <translation>服务器拒收了该数据包，原因见回执。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="44" />
            <source>Receipt {id}</source>
            <translation>回执 {id}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="45" />
            <source>Server time: {time}</source>
            <translation>服务器时间：{time}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="46" />
            <source>Dataset: {dataset}  Region: {region}  Period: {period}</source>
            <translation>数据集：{dataset}  行政区：{region}  期次：{period}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="124" />
            <source>Package sha256: {sha}</source>
            <translation>数据包 sha256：{sha}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="52" />
            <source>Status: {status}</source>
            <translation>状态：{status}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="114" />
            <source>accepted</source>
            <translation>已接收</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="114" />
            <source>rejected</source>
            <translation>已拒收</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="53" />
            <source>Signature: verified with the pinned server key</source>
            <translation>签名：已用固定的服务器密钥校验</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="53" />
            <source>Signature: NOT VALID</source>
            <translation>签名：无效</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="56" />
            <source>This package was submitted before: this is its first receipt.</source>
            <translation>该数据包此前已提交，这是其首次提交的回执。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="59" />
            <source>Findings:</source>
            <translation>检查结果：</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="148" />
            <source>The receipt signature is valid.</source>
            <translation>回执签名有效。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_receipts.py" line="150" />
            <source>The receipt was altered or is not signed by the pinned server key.</source>
            <translation>回执已被篡改，或不是由已固定的服务器密钥签发。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="202" />
            <source>Package copied to {path}</source>
            <translation>数据包已拷贝到 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="427" />
            <source>Export offline package to</source>
            <translation>导出离线数据包到</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="147" />
            <source>Imported {dataset} {region} {period}: {n} layers loaded.</source>
            <translation>已导入 {dataset} {region} {period}：加载了 {n} 个图层。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="158" />
            <source>Import package</source>
            <translation>导入数据包</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="92" />
            <source>Exchange package (*.zip)</source>
            <translation>汇交数据包 (*.zip)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="187" />
            <source>Register offline package</source>
            <translation>登记离线数据包</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="435" />
            <source>The upload is paused; it resumes with the next Submit.</source>
            <translation>上传已暂停，下次点击“提交”时继续。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="87" />
            <source>New change patch</source>
            <translation>新建变化图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="102" />
            <source>Number</source>
            <translation>编号</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="103" />
            <source>Computed</source>
            <translation>自动计算</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="104" />
            <source>Type</source>
            <translation>类型</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="105" />
            <source>Reason</source>
            <translation>原因</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="106" />
            <source>Notes</source>
            <translation>备注</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="293" />
            <source>The patch layer cannot be edited.</source>
            <translation>变化图斑图层无法编辑。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="335" />
            <source>Mark change patch {number}</source>
            <translation>标记变化图斑 {number}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="366" />
            <source>No polygon feature under the cursor.</source>
            <translation>光标处没有面要素。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="409" />
            <source>Split change patches</source>
            <translation>分割变化图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="413" />
            <source>The line does not split any patch.</source>
            <translation>该线未分割任何图斑。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="447" />
            <source>Select at least two patches to merge.</source>
            <translation>请至少选择两个图斑进行合并。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="454" />
            <source>Merge change patches</source>
            <translation>合并变化图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/plugin.py" line="104" />
            <source>The Processing tools could not be loaded: {error}</source>
            <translation>无法加载数据处理工具：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="70" />
            <source>Check dataset against the standard</source>
            <translation>按标准检查数据集</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="73" />
            <source>Checks a layer against its dataset in the shared-data catalog: coordinate system (CGCS2000 geographic or Gauss-Krüger zones), required fields and field types, codes outside their code tables (counted per value), DLMC not matching DLBM, empty and invalid geometries, duplicate BSM and the area field (TBMJ …) against the recomputed ellipsoidal area, tolerance max(0.1 m², 1e-6 × area). DATASET 'auto' recognises the dataset from the layer name and fields.
Outputs a findings table (one row per rule and value, severity error or warning, a Chinese message saying what to fix, the feature ids) and a layer of the offending features with the rule ids.</source>
            <translation>按共享清单中的数据集标准检查图层:坐标系(CGCS2000 地理坐标或高斯-克吕格分带)、必填字段和字段类型、代码表之外的代码(按值计数)、地类名称与地类编码不符、空几何和无效几何、标识码 BSM 重复,以及面积字段(TBMJ 等)与重新计算的椭球面积之差,容差为 max(0.1 m², 1e-6 × 面积)。数据集选 'auto' 时按图层名和字段自动识别。
输出检查结果表(每条规则和值一行,严重性为错误或警告,中文说明如何修改,要素 ID)以及带规则编号的问题要素图层。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="88" />
            <source>Layer to check</source>
            <translation>待检查图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="89" />
            <source>Catalog dataset ('auto' = recognise)</source>
            <translation>共享清单数据集('auto' = 自动识别)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="98" />
            <source>Catalog override file (JSON, optional; default: the one in the settings)</source>
            <translation>共享清单覆盖文件(JSON,可选;默认使用设置中的文件)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="80" />
            <source>Findings</source>
            <translation>检查结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="111" />
            <source>Offending features</source>
            <translation>问题要素</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="116" />
            <source>Number of error findings</source>
            <translation>错误数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="117" />
            <source>Number of warning findings</source>
            <translation>警告数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="118" />
            <source>Checked dataset</source>
            <translation>检查的数据集</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="143" />
            <source>Cannot recognise which catalog dataset '{name}' is; choose the dataset.</source>
            <translation>无法识别“{name}”属于共享清单中的哪个数据集,请手动选择数据集。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="149" />
            <source>Recognised as {dataset} (confidence {confidence:.2f}): {evidence}</source>
            <translation>识别为 {dataset}(置信度 {confidence:.2f}):{evidence}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="155" />
            <source>Unknown catalog dataset: {id}</source>
            <translation>共享清单中没有数据集:{id}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/check_dataset.py" line="195" />
            <source>{errors} errors, {warnings} warnings in {n} features ({s:.1f} s)</source>
            <translation>{n} 个要素中有 {errors} 个错误、{warnings} 个警告(用时 {s:.1f} 秒)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="88" />
            <source>Rule profile (JSON, optional)</source>
            <translation>规则配置文件（JSON，可选）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="156" />
            <source>Comparison result</source>
            <translation>比对结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="161" />
            <source>Statistics by region</source>
            <translation>分区统计</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="105" />
            <source>Statistics workbook (xlsx)</source>
            <translation>统计工作簿（xlsx）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="171" />
            <source>Number of pieces</source>
            <translation>图斑数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="172" />
            <source>Total area (m²)</source>
            <translation>总面积（平方米）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="173" />
            <source>Total area (mu)</source>
            <translation>总面积（亩）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="217" />
            <source>{role}: {n} invalid geometries repaired (feature ids {ids})</source>
            <translation>{role}：已修复 {n} 个无效几何（要素编号 {ids}）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="68" />
            <source>Cannot determine the Gauss-Krüger zone of the coordinates: {detail}. Set the layer CRS (e.g. EPSG:4545 or EPSG:4524) or check whether X and Y are swapped, and run again.</source>
            <translation>无法确定坐标的高斯-克吕格投影带：{detail}。请设置图层坐标系（如 EPSG:4545 或 EPSG:4524）或检查 X、Y 是否颠倒后重新运行。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="86" />
            <source>Ellipsoidal area (TBMJ)</source>
            <translation>椭球面积（图斑面积 TBMJ）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="102" />
            <source>Input polygon layer</source>
            <translation>输入面图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="107" />
            <source>Also fill TBMJ, KCMJ and TBDLMJ</source>
            <translation>同时填写 TBMJ、KCMJ 和 TBDLMJ</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="112" />
            <source>Terrace-ridge coefficient table (JSON, optional)</source>
            <translation>田坎系数表（JSON，可选）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="120" />
            <source>Layer with ellipsoidal areas</source>
            <translation>带椭球面积的图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="136" />
            <source>The input layer must be a polygon layer; '{name}' has {type} geometries.</source>
            <translation>输入图层必须是面图层；“{name}”的几何类型为 {type}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="148" />
            <source>Cannot read the terrace-ridge coefficient table: {error}</source>
            <translation>无法读取田坎系数表：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="182" />
            <source>Area method: {method}</source>
            <translation>面积计算方法：{method}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="212" />
            <source>{count} features had problems in total (only the first {shown} are listed).</source>
            <translation>共有 {count} 个要素存在问题（仅列出前 {shown} 个）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="217" />
            <source>{count} features written.</source>
            <translation>已写入 {count} 个要素。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="244" />
            <source>Feature {fid}: no area ({error}).</source>
            <translation>要素 {fid}：无法计算面积（{error}）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="257" />
            <source>Feature {fid}: KCXS '{value}' is not a number.</source>
            <translation>要素 {fid}：扣除地类系数 KCXS“{value}”不是数值。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="267" />
            <source>Feature {fid}: no terrace-ridge coefficient for GDPDJB '{level}' and GDLX '{kind}'.</source>
            <translation>要素 {fid}：田坎系数表中没有耕地坡度级别“{level}”、耕地类型“{kind}”的系数。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="310" />
            <source>Feature {fid}: {error}</source>
            <translation>要素 {fid}：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="50" />
            <source>Build exchange package</source>
            <translation>生成汇交数据包</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="53" />
            <source>Validates the layers (catalog checks, geometry validity, overlaps in partition layers, region codes, required fields) and writes the exchange package: a zip with manifest.json and the data as a deterministic GeoPackage. Errors stop the build; warnings stop it unless they are accepted. Region, department and unit default to the plugin settings. Optionally copies the package to a folder for offline exchange.</source>
            <translation>检查图层（共享清单检查、几何有效性、须无缝无叠图层中的重叠、行政区代码、必填字段），并写出汇交数据包：包含 manifest.json 和确定性 GeoPackage 数据的 zip 文件。有错误时停止生成；有警告时，除非确认接受，也停止生成。行政区、部门和单位默认取自插件设置。可选择同时拷贝到文件夹，用于离线交换。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="71" />
            <source>Layers</source>
            <translation>图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="67" />
            <source>Dataset id (catalog)</source>
            <translation>数据集标识（共享清单）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="68" />
            <source>Layer names in the package (comma separated)</source>
            <translation>数据包中的图层名称（逗号分隔）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="74" />
            <source>Period (2025, 2025H1, 2025Q3)</source>
            <translation>期次（2025、2025H1、2025Q3）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="75" />
            <source>Department (empty: from the settings)</source>
            <translation>部门（留空：取自设置）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="84" />
            <source>Producing unit</source>
            <translation>生产单位</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="85" />
            <source>Package CRS</source>
            <translation>数据包坐标系</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="86" />
            <source>Source versions (JSON list) for derived results</source>
            <translation>派生成果的来源版本（JSON 列表）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="91" />
            <source>Accept warnings</source>
            <translation>接受警告</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="57" />
            <source>Package</source>
            <translation>数据包</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="95" />
            <source>Also copy to folder (offline exchange)</source>
            <translation>同时拷贝到文件夹（离线交换）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="81" />
            <source>Package sha256</source>
            <translation>数据包 sha256</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="104" />
            <source>Package UUID</source>
            <translation>数据包 UUID</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="105" />
            <source>Offline copy</source>
            <translation>离线副本</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="106" />
            <source>Validation errors</source>
            <translation>预检错误数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="107" />
            <source>Validation warnings</source>
            <translation>预检警告数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="114" />
            <source>Choose at least one layer to package.</source>
            <translation>请至少选择一个要打包的图层。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="128" />
            <source>Give one package layer name per input layer.</source>
            <translation>请为每个输入图层提供一个数据包图层名称。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="135" />
            <source>The source versions are not valid JSON: {error}</source>
            <translation>来源版本不是有效的 JSON：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="139" />
            <source>The source versions must be a JSON list.</source>
            <translation>来源版本必须是 JSON 列表。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="141" />
            <source>Pre-flight validation…</source>
            <translation>汇交前预检…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="160" />
            <source>Validation found {n} errors; the package was not built.</source>
            <translation>预检发现 {n} 个错误，未生成数据包。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="165" />
            <source>Validation found {n} warnings; check them and accept them to build the package.</source>
            <translation>预检发现 {n} 个警告：请检查并确认接受后再生成数据包。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="171" />
            <source>Writing the package…</source>
            <translation>正在写出数据包…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="196" />
            <source>Copied to {path}</source>
            <translation>已拷贝到 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_build_package.py" line="197" />
            <source>Package {path}, sha256 {sha}</source>
            <translation>数据包 {path}，sha256 {sha}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="37" />
            <source>Import exchange package (offline)</source>
            <translation>导入汇交数据包（离线）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="40" />
            <source>Imports a package received on a disk or through a folder: checks the package hash (.sha256 side file) and the hash of every data file, refuses a package that was already imported, extracts it and loads its layers.</source>
            <translation>导入通过磁盘或文件夹收到的数据包：核对数据包哈希（.sha256 附带文件）和每个数据文件的哈希，拒绝已导入过的数据包，解压并加载其图层。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="50" />
            <source>Extract to (empty: the profile folder)</source>
            <translation>解压到（留空：配置文件夹）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="58" />
            <source>Import registry (empty: the profile folder)</source>
            <translation>导入登记文件（留空：配置文件夹）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="67" />
            <source>Load the layers</source>
            <translation>加载图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="69" />
            <source>Dataset id</source>
            <translation>数据集标识</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="70" />
            <source>Extracted to</source>
            <translation>已解压到</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="80" />
            <source>Verifying {path}…</source>
            <translation>正在校验 {path}…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_import_package.py" line="100" />
            <source>Imported {dataset} {region} {period} ({n} layers).</source>
            <translation>已导入 {dataset} {region} {period}（{n} 个图层）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="44" />
            <source>Submit exchange package</source>
            <translation>提交汇交数据包</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="47" />
            <source>Uploads an exchange package to the exchange server (resumable: an interrupted or canceled run continues where it stopped when it is started again), commits it and verifies the signed receipt with the server key pinned on first contact. The receipt is kept in the local history. With 'offline' the package, already delivered on a disk, is only registered with the server. Server and account default to the plugin settings; credentials come from the QGIS authentication manager.</source>
            <translation>将汇交数据包上传到汇交服务器（可续传：中断或取消后再次运行将从中断处继续），提交并用首次连接时固定的服务器密钥校验签名回执。回执保存在本地历史中。勾选“离线”时，已通过磁盘交付的数据包只向服务器登记。服务器和账号默认取自插件设置；凭据来自 QGIS 认证管理器。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="58" />
            <source>Server address (empty: settings)</source>
            <translation>服务器地址（留空：取自设置）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="63" />
            <source>Account (empty: settings)</source>
            <translation>账号（留空：取自设置）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="66" />
            <source>Register a package exchanged offline (no upload)</source>
            <translation>登记已离线交换的数据包（不上传）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="71" />
            <source>State folder (empty: the QGIS profile)</source>
            <translation>状态文件夹（留空：QGIS 配置文件夹）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="76" />
            <source>Submission id</source>
            <translation>提交编号</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="78" />
            <source>Receipt verified</source>
            <translation>回执已校验</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="79" />
            <source>Already submitted before</source>
            <translation>此前已提交</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="111" />
            <source>Uploading {path} to {server}…</source>
            <translation>正在将 {path} 上传到 {server}…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="114" />
            <source>The upload was interrupted; run the algorithm again to resume it.</source>
            <translation>上传被中断，请再次运行该算法以继续上传。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="123" />
            <source>The package was submitted before; this is the first receipt.</source>
            <translation>该数据包此前已提交，这是首次提交的回执。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/exchange_submit_package.py" line="124" />
            <source>Receipt {id}: {status}, signature verified.</source>
            <translation>回执 {id}：{status}，签名已校验。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_atlas.py" line="41" />
            <source>Patch map sheets (PDF atlas)</source>
            <translation>图斑核查图（PDF 图集）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="62" />
            <source>Context layers</source>
            <translation>参考图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_checklist.py" line="62" />
            <source>Title</source>
            <translation>标题</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_atlas.py" line="64" />
            <source>Resolution (dpi)</source>
            <translation>分辨率（dpi）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_atlas.py" line="74" />
            <source>PDF atlas</source>
            <translation>PDF 图集</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_atlas.py" line="94" />
            <source>{n} pages written to {path}</source>
            <translation>已写出 {n} 页到 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_checklist.py" line="40" />
            <source>Patch checklist (xlsx)</source>
            <translation>图斑核查清单（xlsx）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_checklist.py" line="63" />
            <source>Checklist</source>
            <translation>核查清单</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_checklist.py" line="84" />
            <source>{n} rows written to {path}</source>
            <translation>已写出 {n} 行到 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_common.py" line="29" />
            <source>Change-patch GeoPackage (BGHTB)</source>
            <translation>变化图斑 GeoPackage（BGHTB）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_common.py" line="37" />
            <source>Patch numbers or UUIDs (comma separated, empty = all)</source>
            <translation>图斑编号或唯一标识（逗号分隔，空 = 全部）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_common.py" line="42" />
            <source>Attribute filter (e.g. status = 'pending')</source>
            <translation>属性筛选（例如 status = 'pending'）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_common.py" line="45" />
            <source>At most this many patches (0 = no limit)</source>
            <translation>最多图斑数（0 = 不限）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_common.py" line="77" />
            <source>Invalid attribute filter: {error}</source>
            <translation>属性筛选条件无效：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_common.py" line="79" />
            <source>No change patches match the selection.</source>
            <translation>没有符合选择条件的变化图斑。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="48" />
            <source>Field verification package</source>
            <translation>外业核查包</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="51" />
            <source>Writes a field-verification package into an empty folder: a GeoPackage with the selected change patches, a photo table and the context layers clipped to the patches plus a buffer, and a QGIS project with edit forms (status and result lists, date, photos) that opens in QGIS and QField. Optionally an MBTiles basemap from a raster file. Bring the folder back and run 'Import field results'.</source>
            <translation>在空文件夹中生成外业核查包：包含所选变化图斑、照片表以及按图斑外扩范围裁剪的参考图层的 GeoPackage，和带编辑表单（状态与核查结果下拉列表、日期、照片）的 QGIS 工程，可在 QGIS 和 QField 中打开。可选用栅格文件生成 MBTiles 底图。外业完成后交回该文件夹，运行“导入外业核查成果”。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="70" />
            <source>Area of interest: buffer around the patches</source>
            <translation>范围：图斑外扩距离</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="75" />
            <source>Basemap raster for MBTiles</source>
            <translation>用于 MBTiles 的底图栅格</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="78" />
            <source>Package name</source>
            <translation>核查包名称</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="79" />
            <source>Also write a zip file</source>
            <translation>同时生成 zip 文件</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="53" />
            <source>User name</source>
            <translation>用户名</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="83" />
            <source>Package folder</source>
            <translation>核查包文件夹</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="84" />
            <source>QGIS project</source>
            <translation>QGIS 工程</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="85" />
            <source>Package GeoPackage</source>
            <translation>核查包 GeoPackage</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="86" />
            <source>Package id</source>
            <translation>核查包标识</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="87" />
            <source>Patches exported</source>
            <translation>导出图斑数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_field_package.py" line="111" />
            <source>{n} patches exported to {path}</source>
            <translation>已导出 {n} 个图斑到 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="52" />
            <source>Change patches from a comparison</source>
            <translation>由比对结果生成变化图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="55" />
            <source>Turns a comparison output (any polygon layer with a rule_id field) into change patches: pieces of the same patch type and rule that touch are merged, patches under the minimum area are dropped (defaults 200 m² for non-agricultural use, 400 m² otherwise; set a value to override), and the rest get a UUID and a number (county code + year + sequence). Region codes come from the township (XZQ) and village (CJDCQ) layers. Patches already in the GeoPackage (same type and rule, overlapping by the match ratio) are kept, so running the same comparison again creates no duplicates. The GeoPackage is created when it does not exist.</source>
            <translation>将比对结果（任何带 rule_id 字段的面图层）转为变化图斑：同一图斑类型和规则下相邻的碎片合并，小于最小上图面积的图斑舍去（默认非农化 200 平方米，其他 400 平方米；填写数值可覆盖），其余图斑赋予唯一标识（UUID）和编号（县级代码 + 年度 + 顺序号）。行政区代码取自乡级（XZQ）和村级（CJDCQ）图层。GeoPackage 中已有的图斑（类型和规则相同、重叠比例达到匹配阈值）保持不变，因此对同一比对重复运行不会产生重复图斑。GeoPackage 不存在时自动创建。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="67" />
            <source>Comparison output</source>
            <translation>比对结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="72" />
            <source>Change-patch GeoPackage (created or updated)</source>
            <translation>变化图斑 GeoPackage（新建或更新）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="77" />
            <source>CRS of a new GeoPackage (default: input CRS)</source>
            <translation>新建 GeoPackage 的坐标系（默认与输入相同）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="82" />
            <source>County code (6 digits)</source>
            <translation>县级代码（6 位）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="85" />
            <source>Year of the patch numbers</source>
            <translation>图斑编号年度</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="95" />
            <source>Patch type when the rule id does not tell</source>
            <translation>规则无法确定类型时使用的图斑类型</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="95" />
            <source>(none)</source>
            <translation>（无）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="103" />
            <source>Minimum patch area in m² (empty = defaults per type)</source>
            <translation>最小图斑面积（平方米，空 = 按类型默认值）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="112" />
            <source>Townships (XZQ)</source>
            <translation>乡级行政区（XZQ）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="117" />
            <source>Villages (CJDCQ)</source>
            <translation>村级调查区（CJDCQ）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="125" />
            <source>Overlap ratio for an existing patch to count as the same</source>
            <translation>视为同一图斑的重叠比例</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="136" />
            <source>Patches created</source>
            <translation>新建图斑数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="137" />
            <source>Patches already present</source>
            <translation>已存在图斑数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="138" />
            <source>Patches under the minimum area</source>
            <translation>小于最小面积的图斑数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="149" />
            <source>The county code must have 6 digits: {code}</source>
            <translation>县级代码必须为 6 位数字：{code}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="158" />
            <source>Created {path}</source>
            <translation>已创建 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_from_comparison.py" line="192" />
            <source>{n} pieces have a rule id without a known patch type and were skipped.</source>
            <translation>{n} 个碎片的规则无法对应图斑类型，已跳过。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="33" />
            <source>Import field results</source>
            <translation>导入外业核查成果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="36" />
            <source>Reads a returned field package (its GeoPackage or the zip file), matches the patches by UUID and applies status, result, verifier, date, notes and photos with history. A package whose content was already imported is refused. Patches changed both at the desk and in the field since the export are reported as conflicts: the desk values stay, the field values are kept in the conflict table for you to resolve.</source>
            <translation>读取交回的外业核查包（其中的 GeoPackage 或 zip 文件），按唯一标识（UUID）匹配图斑，写入状态、核查结果、核查人、日期、说明和照片，并记录修改历史。内容已导入过的核查包会被拒绝。导出后内业和外业都修改过的图斑作为冲突报告：保留内业值，外业值保存在冲突表中，由您处理。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="46" />
            <source>Returned field package (.gpkg in the package folder, or .zip)</source>
            <translation>交回的外业核查包（核查包文件夹中的 .gpkg 或 .zip）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="54" />
            <source>Import report</source>
            <translation>导入报告</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="59" />
            <source>Patches updated</source>
            <translation>已更新图斑数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="60" />
            <source>Conflicts</source>
            <translation>冲突</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="61" />
            <source>Refused changes</source>
            <translation>被拒绝的修改数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="62" />
            <source>Photos added</source>
            <translation>新增照片数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="81" />
            <source>Conflict on patch {number}: {reason}</source>
            <translation>图斑 {number} 存在冲突：{reason}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_import_field_results.py" line="87" />
            <source>Refused for patch {number}: {reason}</source>
            <translation>图斑 {number} 的修改被拒绝：{reason}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="180" />
            <source>Draw</source>
            <translation>绘制</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="181" />
            <source>Pick features</source>
            <translation>选取要素</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="182" />
            <source>Split</source>
            <translation>分割</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="184" />
            <source>Merge selected</source>
            <translation>合并所选</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="186" />
            <source>Save edits</source>
            <translation>保存编辑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="68" />
            <source>The region of the data; inside your own region (settings).</source>
            <translation>数据所属行政区；须在本人辖区（设置）之内。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="212" />
            <source>{n} interrupted uploads: Submit resumes them where they stopped.</source>
            <translation>{n} 个上传被中断：点击“提交”将从中断处继续。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="263" />
            <source>Resuming the interrupted upload of {name}.</source>
            <translation>正在继续上传中断的 {name}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/plugin.py" line="178" />
            <source>The panel {name} could not be opened: {error}</source>
            <translation>无法打开面板 {name}：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="89" />
            <source>Computes the ellipsoidal area of every polygon as the third national land survey does (TD/T 1055 quadrangle formula on the CGCS2000 ellipsoid, edges densified every 70 m, vertices rounded to 0.0001 m) and writes AREA_M2 (m², 2 decimals), AREA_MU (mu, 2 decimals) and AREA_HA (hectares, 4 decimals). The Gauss-Krüger zone comes from the layer CRS, or from 8-digit zone-prefixed eastings when the layer has no CRS. Holes are subtracted, multipolygon parts summed; invalid geometries are measured as they are, ring by ring.
Optionally also fills TBMJ, KCMJ = TBMJ × KCXS and TBDLMJ = TBMJ − KCMJ (2 decimals). KCXS comes from the feature's KCXS field, else from the terrace-ridge coefficient table by GDPDJB and GDLX (default values shipped with the plugin, overridable by a JSON table file).</source>
            <translation>按第三次全国国土调查的方法计算每个面要素的椭球面积（TD/T 1055 梯形面积公式，CGCS2000 椭球，边长每 70 米加密，坐标取至 0.0001 米），并写入 AREA_M2（平方米，2 位小数）、AREA_MU（亩，2 位小数）和 AREA_HA（公顷，4 位小数）。投影带取自图层坐标系；图层无坐标系时取自 8 位带号横坐标。内环（洞）面积扣除，多部件面积累加；无效几何按原样逐环计算。
可选同时填写 TBMJ、KCMJ = TBMJ × KCXS 和 TBDLMJ = TBMJ − KCMJ（2 位小数）。KCXS 取要素的 KCXS 字段，缺失时按 GDPDJB 和 GDLX 查田坎系数表（插件自带默认值，可用 JSON 表文件覆盖）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/ellipsoidal_area.py" line="320" />
            <source>Cannot write to the output layer: {error}</source>
            <translation>无法写入输出图层：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="197" />
            <source>Field package…</source>
            <translation>外业包…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="197" />
            <source>Map sheets…</source>
            <translation>核查图册…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="197" />
            <source>Checklist…</source>
            <translation>核查清单…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="197" />
            <source>Import results…</source>
            <translation>导入外业成果…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/layer_tasks.py" line="43" />
            <source>{done} / {total} KB</source>
            <translation>{done} / {total} KB</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="74" />
            <source>Ask the server administrator for a new token and update the authentication.</source>
            <translation>请向服务器管理员申请新令牌并更新认证配置。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="76" />
            <source>Configure the account (authentication configuration) in the plugin settings.</source>
            <translation>请在插件设置中配置账号（认证配置）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="77" />
            <source>Check the user name and password of the authentication configuration.</source>
            <translation>请检查认证配置中的用户名和密码。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="78" />
            <source>Check the token of the authentication configuration in the plugin settings.</source>
            <translation>请检查插件设置中认证配置的令牌。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="81" />
            <source>Check the dataset and the department in the plugin settings.</source>
            <translation>请检查插件设置中的数据集和部门。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="82" />
            <source>Check the region code of the package and of your account.</source>
            <translation>请检查数据包和账号的行政区代码。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="83" />
            <source>Split the data into several packages or ask the administrator to raise the limit.</source>
            <translation>请将数据拆分为多个数据包，或请管理员提高上限。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="86" />
            <source>Wait until your other uploads finish or cancel them.</source>
            <translation>请等待其他上传完成，或取消这些上传。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="87" />
            <source>The package was already submitted by another account of your unit.</source>
            <translation>该数据包已由本单位的其他账号提交。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="561" />
            <source>The receipt names another server key ({claimed}) than the pinned one ({pinned}).</source>
            <translation>回执所列的服务器密钥（{claimed}）与已固定的密钥（{pinned}）不同。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/patches/field_package/conflicts.py" line="56" />
            <source>No open conflict with id {id}</source>
            <translation>不存在编号为 {id} 的待处理冲突</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_detail.py" line="128" />
            <source>Take field values</source>
            <translation>采用外业值</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_detail.py" line="130" />
            <source>Keep desk values</source>
            <translation>保留内业值</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="188" />
            <source>From selection</source>
            <translation>由所选要素生成</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="189" />
            <source>Make a patch of every selected feature of the active layer</source>
            <translation>将当前图层的每个所选要素生成一个图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_detail.py" line="162" />
            <source>Select a conflict first.</source>
            <translation>请先选择一个冲突。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="342" />
            <source>{n} conflicts resolved</source>
            <translation>已处理 {n} 条冲突</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="61" />
            <source>{value} MB</source>
            <translation>{value} MB</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="62" />
            <source>{value} KB</source>
            <translation>{value} KB</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_shared_layers.py" line="246" />
            <source>Catalog</source>
            <translation>共享清单</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="474" />
            <source>Shared data from the server</source>
            <translation>服务器共享数据</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="94" />
            <source>Refresh list</source>
            <translation>刷新列表</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="97" />
            <source>Download and load</source>
            <translation>下载并加载</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="99" />
            <source>Download the selected package (resumed after a cut), check its hashes and load it styled</source>
            <translation>下载所选数据包（断线后续传），校验哈希值并按样式加载</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="107" />
            <source>Check for new data</source>
            <translation>检查新数据</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="118" />
            <source>Also list my department's data</source>
            <translation>同时列出本部门的数据</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="124" />
            <source>Version</source>
            <translation>版本</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="124" />
            <source>Size</source>
            <translation>大小</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="124" />
            <source>Shared on</source>
            <translation>共享日期</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="245" />
            <source>Server {url}, region {region}</source>
            <translation>服务器 {url}，行政区 {region}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="248" />
            <source>Listing the shared data on the server</source>
            <translation>正在列出服务器上的共享数据</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="251" />
            <source>Asking the server…</source>
            <translation>正在查询服务器…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="277" />
            <source>downloaded</source>
            <translation>已下载</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="278" />
            <source>on the server</source>
            <translation>在服务器上</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="312" />
            <source>{count} shared datasets on the server.</source>
            <translation>服务器上有 {count} 个共享数据集。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="340" />
            <source>Choose a dataset in the list first.</source>
            <translation>请先在列表中选择一个数据集。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="354" />
            <source>Downloading {name}</source>
            <translation>正在下载{name}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="355" />
            <source>Downloading {name}…</source>
            <translation>正在下载{name}…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="380" />
            <source>{name} {region} {period} (version {version}) loaded: {count} layers.</source>
            <translation>已加载{name} {region} {period}（第 {version} 版）：{count} 个图层。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="388" />
            <source>(from the local cache)</source>
            <translation>（来自本地缓存）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="426" />
            <source>Checking the server for new shared data</source>
            <translation>正在检查服务器上的新共享数据</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="445" />
            <source>New {name} data has arrived ({region}, {period})</source>
            <translation>新的{name}数据已到达（{region}，{period}）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="460" />
            <source>No new shared data.</source>
            <translation>没有新的共享数据。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_server_shared.py" line="464" />
            <source>{count} new shared datasets have arrived.</source>
            <translation>已到达 {count} 个新的共享数据集。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="380" />
            <source>Select polygon features on another layer first.</source>
            <translation>请先在其他图层上选择面要素。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/base.py" line="16" />
            <source>Basic tools</source>
            <translation>基础工具</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/base.py" line="17" />
            <source>Shared data</source>
            <translation>共享数据</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/base.py" line="20" />
            <source>Exchange</source>
            <translation>成果汇交</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="77" />
            <source>Pre-flight validation</source>
            <translation>汇交前预检</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="87" />
            <source>Validating…</source>
            <translation>正在预检……</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="192" />
            <source>Building the exchange package</source>
            <translation>生成交换数据包</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/package_flow.py" line="205" />
            <source>Building the package…</source>
            <translation>正在生成数据包……</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Candidate to bring into PBF</source>
            <translation>划入候选</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Ecological protection red line</source>
            <translation>生态保护红线</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Ecologically fragile</source>
            <translation>生态脆弱</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="61" />
            <source>Severe drought area</source>
            <translation>严重干旱区</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Strictly controlled soil</source>
            <translation>严格管控类土壤</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Enclave</source>
            <translation>插花地</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Fragmented plot</source>
            <translation>细碎地</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Non-grain crops</source>
            <translation>非粮化</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>No longer farmland</source>
            <translation>已非耕地（园/林/坑塘等占用）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Farmland turned into construction land</source>
            <translation>耕地变为建设用地</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Under construction-type monitoring patch</source>
            <translation>位于建设类监测图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>PBF covered by HSF</source>
            <translation>已建高标准农田的永久基本农田</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>PBF not covered by HSF</source>
            <translation>未建高标准农田的永久基本农田</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>HSF on non-farmland</source>
            <translation>高标准农田位于非耕地</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Contiguous block</source>
            <translation>连片块</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Added</source>
            <translation>新增</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Removed</source>
            <translation>灭失</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Modified</source>
            <translation>变化</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Only in A</source>
            <translation>仅 A 有</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Only in B</source>
            <translation>仅 B 有</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>In both</source>
            <translation>两者都有</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Candidates to bring into PBF</source>
            <translation>划入候选</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Built high-standard farmland on farmland that is not permanent basic farmland.</source>
            <translation>已建高标准农田中位于耕地、但未划入永久基本农田的部分。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>PBF exit candidates</source>
            <translation>优先调出候选</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>PBF non-grain use</source>
            <translation>永久基本农田非粮化</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Farmland turned non-agricultural</source>
            <translation>耕地非农化</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Contiguous blocks</source>
            <translation>集中连片</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Version differences</source>
            <translation>年度变化比对</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Boundary comparison</source>
            <translation>边界套合比对</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="56" />
            <source>Land-use patches DLTB (year N)</source>
            <translation>地类图斑 DLTB（第 N 年）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="57" />
            <source>Land-use patches DLTB (year N+1)</source>
            <translation>地类图斑 DLTB（第 N+1 年）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="58" />
            <source>Permanent basic farmland YJJBNTBHTB</source>
            <translation>永久基本农田 YJJBNTBHTB</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="59" />
            <source>High-standard farmland plots</source>
            <translation>高标准农田地块</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="60" />
            <source>Ecological protection red line STBHHX</source>
            <translation>生态保护红线 STBHHX</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="62" />
            <source>Soil environmental quality categories</source>
            <translation>耕地土壤环境质量类别</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="63" />
            <source>Monitoring patches JCTB</source>
            <translation>监测图斑 JCTB</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="64" />
            <source>Townships XZQ (for statistics)</source>
            <translation>乡镇行政区 XZQ（用于统计）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="65" />
            <source>Villages CJDCQ (for statistics)</source>
            <translation>村级调查区 CJDCQ（用于统计）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="66" />
            <source>Layer A</source>
            <translation>图层 A</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="67" />
            <source>Layer B</source>
            <translation>图层 B</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Block size class bounds in mu (e.g. 10,50,100,500,1000)</source>
            <translation>连片规模分级界值，亩（如 10,50,100,500,1000）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Construction DLBM prefixes</source>
            <translation>建设用地地类编码前缀</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Construction-type TBLX codes of monitoring patches</source>
            <translation>监测图斑建设类图斑类型（TBLX）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="72" />
            <source>Farmland DLBM codes (comma separated)</source>
            <translation>耕地地类编码（逗号分隔）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Ecologically fragile TBXHDM codes</source>
            <translation>生态脆弱图斑细化代码（TBXHDM）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Values of the strictly controlled soil category</source>
            <translation>严格管控类的取值</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>FRDBS values marking enclaves</source>
            <translation>表示飞入地的 FRDBS 值</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Fragment threshold: blocks under this many mu</source>
            <translation>细碎地阈值：连片面积小于此亩数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Non-grain ZZSXDM codes (e.g. FLS,WG)</source>
            <translation>非粮种植属性代码（如 FLS,WG）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>DLBM prefixes counted as occupation (empty = all)</source>
            <translation>视为占用的地类编码前缀（空 = 全部非耕地）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Attributes to compare (e.g. DLBM,ZZSXDM)</source>
            <translation>比较的属性（如 DLBM,ZZSXDM）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Minimum overlap ratio of a matched pair (0–1)</source>
            <translation>匹配图斑的最小重叠比例（0–1）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>PBF inside each exit reason: red line, fragile, drought, strictly controlled soil, enclave, fragment.</source>
            <translation>按调出原因列出永久基本农田：生态保护红线、生态脆弱、严重干旱、严格管控类土壤、插花地、细碎地。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>PBF on farmland with a non-grain planting attribute, or on land that is no longer farmland.</source>
            <translation>种植属性为非粮的耕地上的永久基本农田，或已不是耕地的永久基本农田。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Farmland or PBF of year N that is construction land in year N+1 or under construction-type monitoring patches.</source>
            <translation>第 N 年的耕地（或永久基本农田）在第 N+1 年变为建设用地，或位于建设类监测图斑内（非农化）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>PBF covered and not covered by high-standard farmland, HSF on non-farmland, coverage per region.</source>
            <translation>永久基本农田中已建/未建高标准农田的部分、位于非耕地的高标准农田，以及各行政区覆盖率。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Blocks of adjacent PBF or farmland within a tolerance and their size distribution.</source>
            <translation>容差范围内相邻的永久基本农田或耕地连成片块，统计其规模分布。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>DLTB year N against year N+1, matched spatially: added, removed and modified patches.</source>
            <translation>第 N 年与第 N+1 年地类图斑按空间位置匹配比对：新增、灭失和变化图斑。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Any two polygon layers: only in A, only in B, in both, and the overlap ratio per feature.</source>
            <translation>任意两个面图层：仅 A 有、仅 B 有、两者都有，以及逐要素套合率。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="75" />
            <source>DLBM in the farmland codes</source>
            <translation>地类编码属于耕地编码</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/spec.py" line="114" />
            <source>Within tolerance</source>
            <translation>容差内一致</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/spec.py" line="119" />
            <source>Minimum piece area (m²)</source>
            <translation>最小碎片面积（平方米）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/spec.py" line="119" />
            <source>Pieces smaller than this are not reported (domain.md §6).</source>
            <translation>小于此面积的碎片不予报告（domain.md §6）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/spec.py" line="119" />
            <source>Minimum mean width area/perimeter (m)</source>
            <translation>最小平均宽度 面积/周长（米）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/spec.py" line="119" />
            <source>Mean width = area / perimeter; thinner pieces are slivers (domain.md §6).</source>
            <translation>平均宽度 = 面积 / 周长；更窄的碎片视为细碎多边形（domain.md §6）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/spec.py" line="119" />
            <source>Digitising noise width (m, 0 = off)</source>
            <translation>数字化噪声宽度（米，0 为关闭）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare_results.py" line="79" />
            <source>Cannot write the results to {path}: {error}</source>
            <translation>无法将结果写入 {path}：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare_results.py" line="88" />
            <source>Cannot read the result {name} from {path}</source>
            <translation>无法从 {path} 读取结果 {name}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="78" />
            <source>The server {url} answers (version {version}).</source>
            <translation>服务器 {url} 连接正常（版本 {version}）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="83" />
            <source>The connection is encrypted (TLS) and the certificate is trusted.</source>
            <translation>连接已加密（TLS），证书可信。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="85" />
            <source>The connection is not encrypted (http): use https outside a test network.</source>
            <translation>连接未加密（http）：测试网络以外请使用 https。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="95" />
            <source>The account was refused: {error}</source>
            <translation>账号被拒绝：{error}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="98" />
            <source>Signed in as {name} ({user}), {department}, region {region}, role {role}.</source>
            <translation>已登录：{name}（{user}），{department}，行政区 {region}，角色 {role}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="108" />
            <source>The account belongs to {account}, but the settings say {settings}.</source>
            <translation>该账号属于{account}，但设置中的部门是{settings}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="118" />
            <source>The region {region} in the settings is outside the account's region {account}.</source>
            <translation>设置中的行政区 {region} 不在该账号的行政区 {account} 范围内。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="165" />
            <source>The layer {name} has a name or file with forbidden characters.</source>
            <translation>图层 {name} 的名称或文件含有不允许的字符。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="169" />
            <source>The layer {name} points outside the package data ({file}).</source>
            <translation>图层 {name} 指向数据包数据之外的位置（{file}）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="173" />
            <source>The layer {name} is not in a GeoPackage.</source>
            <translation>图层 {name} 不在 GeoPackage 中。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="192" />
            <source>The package is for region {package}, not for your region {mine}.</source>
            <translation>数据包属于行政区 {package}，不属于您的行政区 {mine}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="199" />
            <source>The package holds dataset {package}, not the expected {expected}.</source>
            <translation>数据包中的数据集为 {package}，不是预期的 {expected}。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="210" />
            <source>The dataset {dataset} of the package is unknown.</source>
            <translation>数据包的数据集 {dataset} 未知。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/offline.py" line="212" />
            <source>The package is not for you; it is not imported.</source>
            <translation>该数据包不属于本单位，未导入。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="120" />
            <source>The server is temporarily unavailable; nothing was rejected. Try again later: the upload resumes where it stopped.</source>
            <translation>服务器暂时不可用，数据包未被拒收。请稍后重试：上传将从中断处继续。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="154" />
            <source>The certificate of the exchange server {url} is not trusted: add its certificate authority to the QGIS authentication manager or set the CA file in the plugin settings.</source>
            <translation>交换服务器 {url} 的证书不受信任：请将其证书颁发机构添加到 QGIS 认证管理器，或在插件设置中指定 CA 证书文件。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="280" />
            <source>The CA certificate file {path} cannot be read: check the plugin settings.</source>
            <translation>无法读取 CA 证书文件 {path}：请检查插件设置。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="287" />
            <source>The CA certificate file {path} holds no PEM certificate.</source>
            <translation>CA 证书文件 {path} 中没有 PEM 格式的证书。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="516" />
            <source>The exchange server's signing key ({found}) is not the one set in the plugin settings ({pinned}). Receipts cannot be trusted: ask the server administrator.</source>
            <translation>交换服务器的签名密钥（{found}）与插件设置中的密钥（{pinned}）不一致，回执不可信：请联系服务器管理员。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/transport.py" line="528" />
            <source>The server's signing key {fingerprint} cannot be trusted over an unencrypted connection: use an https:// address, enter the key fingerprint in the plugin settings, or tick 'unencrypted test server' for a test server.</source>
            <translation>通过未加密的连接无法信任服务器签名密钥 {fingerprint}：请使用 https:// 地址，或在插件设置中填写密钥指纹；若为测试服务器，请勾选“未加密的测试服务器”。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="53" />
            <source>The manifest.json is nested too deeply.</source>
            <translation>manifest.json 的嵌套层级过深。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="55" />
            <source>A file in the package uses a compression method that is not supported.</source>
            <translation>数据包中有文件使用了不支持的压缩方法。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="57" />
            <source>A file in the package is encrypted.</source>
            <translation>数据包中有加密的文件。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="61" />
            <source>The structure of the package is not valid.</source>
            <translation>数据包的结构无效。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="62" />
            <source>The file is not a valid exchange package; ask the sender for a new copy.</source>
            <translation>该文件不是有效的交换包，请向发送方索取新的副本。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="73" />
            <source>The manifest.json of the package is too large.</source>
            <translation>数据包的 manifest.json 过大。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="84" />
            <source>The manifest.json of the package is not a JSON object.</source>
            <translation>数据包的 manifest.json 不是 JSON 对象。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="94" />
            <source>The '{key}' of the manifest is not a list of objects.</source>
            <translation>清单中的“{key}”不是对象列表。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="100" />
            <source>The manifest lists {name} twice.</source>
            <translation>清单中 {name} 出现了两次。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="146" />
            <source>The package holds {n} files, more than the {limit} allowed.</source>
            <translation>数据包含有 {n} 个文件，超过允许的 {limit} 个。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange/verify.py" line="158" />
            <source>The package holds {name} twice.</source>
            <translation>数据包中 {name} 出现了两次。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="48" />
            <source>On time</source>
            <translation>按时</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="49" />
            <source>Delivered late</source>
            <translation>逾期提交</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="179" />
            <source>Overdue</source>
            <translation>已逾期</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="51" />
            <source>Not yet due</source>
            <translation>未到期</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="58" />
            <source>Data collection</source>
            <translation>数据采集汇聚</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="59" />
            <source>Sharing</source>
            <translation>共享开放</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="60" />
            <source>Security</source>
            <translation>安全保障</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="61" />
            <source>Use</source>
            <translation>应用成效</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="86" />
            <source>{done} of {required} this year</source>
            <translation>本年 {done}/{required} 次</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="50" />
            <source>Delivered</source>
            <translation>已提交</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="87" />
            <source>Not delivered</source>
            <translation>未提交</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="93" />
            <source>{days} days late</source>
            <translation>逾期 {days} 天</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="94" />
            <source>{days} days left</source>
            <translation>剩 {days} 天</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/hsf_progress.py" line="295" />
            <source>Total</source>
            <translation>合计</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="179" />
            <source>Obligations</source>
            <translation>应交项</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="197" />
            <source>Evaluation {year}</source>
            <translation>成效评估{year}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="300" />
            <source>Rate (%)</source>
            <translation>比例（%）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/exchange_calendar.py" line="301" />
            <source>Exchange evaluation {year}</source>
            <translation>{year} 年汇交成效评估</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="122" />
            <source>Test connection</source>
            <translation>测试连接</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="126" />
            <source>Server reachable, encrypted connection, account valid, department</source>
            <translation>检查服务器能否连接、连接是否加密、账号是否有效及所属部门</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="208" />
            <source>Inputs</source>
            <translation>输入</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="209" />
            <source>Results</source>
            <translation>结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="218" />
            <source>Province</source>
            <translation>全省</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_compare.py" line="449" />
            <source>{title}: {count} pieces, {area} {unit}</source>
            <translation>{title}：{count} 块，{area} {unit}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="155" />
            <source>Verify</source>
            <translation>核查</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="158" />
            <source>Edit</source>
            <translation>编辑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_patches.py" line="194" />
            <source>Field work</source>
            <translation>外业</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="131" />
            <source>Evaluation</source>
            <translation>成效评估</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="136" />
            <source>Offline</source>
            <translation>离线交换</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/user_context.py" line="77" />
            <source>{name} ({code})</source>
            <translation>{name}（{code}）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_compare_runs.py" line="39" />
            <source>Comparison runs saved in the project GeoPackage</source>
            <translation>保存在项目 GeoPackage 中的比对结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_year_bar.py" line="36" />
            <source>Load</source>
            <translation>加载</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_compare_runs.py" line="43" />
            <source>Add the chosen saved run to the map</source>
            <translation>将所选的已保存结果加载到地图</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_compare_runs.py" line="44" />
            <source>Make change patches</source>
            <translation>生成变化图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_compare_runs.py" line="46" />
            <source>Turn the result into change patches of the patch store opened in the change-patch panel</source>
            <translation>将比对结果转为变化图斑，存入变化图斑面板中打开的图斑库</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_compare_runs.py" line="49" />
            <source>Selected pieces only</source>
            <translation>仅所选图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_compare_runs.py" line="50" />
            <source>Saved runs</source>
            <translation>已保存结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_compare_runs.py" line="95" />
            <source>Open or create a change-patch GeoPackage in the change-patch panel first.</source>
            <translation>请先在变化图斑面板中打开或新建变化图斑 GeoPackage。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_compare_runs.py" line="102" />
            <source>Select pieces of the result on the map first.</source>
            <translation>请先在地图上选择比对结果中的图斑。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="40" />
            <source>Ask the exchange server what your department owes this year</source>
            <translation>向汇交服务器查询本部门本年度应交的数据</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="50" />
            <source>Days</source>
            <translation>剩余</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="90" />
            <source>{n} obligations in {year}, {overdue} overdue (as of {day}).</source>
            <translation>{year} 年共 {n} 项应交，{overdue} 项已逾期（截至 {day}）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="108" />
            <source>Released {date}; due 30 days later unless the catalog says otherwise.</source>
            <translation>{date} 发布；除目录另有规定外，发布后 30 天内汇交。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="111" />
            <source>Monitoring data: at least {n} exchanges a year.</source>
            <translation>监测数据：每年至少汇交 {n} 次。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="113" />
            <source>First delivered {time}</source>
            <translation>首次提交于 {time}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/plugin.py" line="147" />
            <source>Help</source>
            <translation>帮助</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_dock_title.py" line="36" />
            <source>Float or dock the panel</source>
            <translation>浮动或停靠面板</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_dock_title.py" line="39" />
            <source>Close the panel</source>
            <translation>关闭面板</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="84" />
            <source>Ask the server</source>
            <translation>向服务器查询</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="88" />
            <source>Export the table to xlsx</source>
            <translation>将表格导出为 xlsx</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="91" />
            <source>Export chart and table to PDF</source>
            <translation>将图表和表格导出为 PDF</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="237" />
            <source>Indicators of {year}: rates of the obligations due so far.</source>
            <translation>{year} 年指标：按截至目前已到期的应交项计算的比例。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="256" />
            <source>Export evaluation</source>
            <translation>导出成效评估</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="258" />
            <source>Exported to {path}</source>
            <translation>已导出到 {path}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="256" />
            <source>PDF (*.pdf)</source>
            <translation>PDF（*.pdf）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="65" />
            <source>Register with the server…</source>
            <translation>向服务器登记…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="76" />
            <source>Verification result</source>
            <translation>核查结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="77" />
            <source>Verifier</source>
            <translation>核查人</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="78" />
            <source>Verification date</source>
            <translation>核查日期</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="81" />
            <source>Explanation</source>
            <translation>说明</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="80" />
            <source>Reviewer</source>
            <translation>审核人</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="82" />
            <source>Photo / attachment</source>
            <translation>照片/附件</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="85" />
            <source>New status</source>
            <translation>新状态</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="93" />
            <source>Undo last change</source>
            <translation>撤销上次修改</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="122" />
            <source>The selected patches have no status change in common.</source>
            <translation>所选图斑没有共同可用的状态变更。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="124" />
            <source>Select patches in the table.</source>
            <translation>请在表格中选择图斑。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="126" />
            <source>{n} patches selected</source>
            <translation>已选 {n} 个图斑</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_patch_status.py" line="191" />
            <source>Last change undone on {n} patches</source>
            <translation>已撤销 {n} 个图斑的上次修改</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="40" />
            <source>Queued</source>
            <translation>排队中</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="41" />
            <source>Running</source>
            <translation>运行中</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="42" />
            <source>Retrying</source>
            <translation>重试中</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="43" />
            <source>Done</source>
            <translation>已完成</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="44" />
            <source>Done earlier</source>
            <translation>此前已完成</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="45" />
            <source>Failed</source>
            <translation>失败</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="57" />
            <source>Province comparison</source>
            <translation>全省比对</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="88" />
            <source>Folder of county GeoPackages, or postgresql://…?schema=…</source>
            <translation>县级 GeoPackage 文件夹，或 postgresql://…?schema=…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="101" />
            <source>Dask scheduler address (empty = this computer)</source>
            <translation>Dask 调度器地址（留空 = 本机）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="104" />
            <source>Install dask[distributed] to use a Dask cluster.</source>
            <translation>安装 dask[distributed] 后可使用 Dask 集群。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="107" />
            <source>Output</source>
            <translation>输出</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="115" />
            <source>Worker processes</source>
            <translation>工作进程数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="116" />
            <source>Dask scheduler</source>
            <translation>Dask 调度器</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="119" />
            <source>Progress</source>
            <translation>进度</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="122" />
            <source>Run province</source>
            <translation>运行全省比对</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="140" />
            <source>Folder of county GeoPackages</source>
            <translation>县级 GeoPackage 文件夹</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="93" />
            <source>Province result</source>
            <translation>全省比对结果</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="153" />
            <source>Choose a source and an output GeoPackage.</source>
            <translation>请选择数据源和输出 GeoPackage。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="228" />
            <source>{done} counties done, {failed} failed.</source>
            <translation>{done} 个县完成，{failed} 个县失败。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="77" />
            <source>Layers to submit (a dataset layer, or patches with their results)</source>
            <translation>要提交的图层（数据集图层，或变化图斑及其核查结果）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="86" />
            <source>Check the ticked layers before submitting</source>
            <translation>提交前检查勾选的图层</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_submit_form.py" line="136" />
            <source>The server's receipt appears here after a submission.</source>
            <translation>提交后，服务器的回执显示在这里。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/plugin.py" line="149" />
            <source>Open the user manual (Chinese)</source>
            <translation>打开用户手册（中文）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_common.py" line="119" />
            <source>Pieces smaller than MIN_AREA, with a mean width area/perimeter under MIN_WIDTH or thinner than NOISE_WIDTH everywhere (digitising noise between the departments; 0 switches it off) are not reported. Every parameter left empty takes the value of the rule profile (domain.md §10). Every output feature carries rule_id, the category and the ellipsoidal area in m², mu and hectares.</source>
            <translation>面积小于 MIN_AREA、平均宽度（面积/周长）小于 MIN_WIDTH 或处处窄于 NOISE_WIDTH（部门之间的数字化噪声；0 为关闭）的碎片不予报告。留空的参数均取规则配置中的值（domain.md §10）。每个输出要素带有 rule_id、类别及以平方米、亩和公顷计的椭球面积。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="55" />
            <source>Province comparison (county by county)</source>
            <translation>全省比对（逐县）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="71" />
            <source>Preset id</source>
            <translation>比对规则编号</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="72" />
            <source>County GeoPackage folder or PostGIS URI</source>
            <translation>县级 GeoPackage 文件夹或 PostGIS 连接地址</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="76" />
            <source>Worker processes (0 = cores)</source>
            <translation>工作进程数（0 = CPU 核数）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="85" />
            <source>Dask scheduler address</source>
            <translation>Dask 调度器地址</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="110" />
            <source>Counties finished</source>
            <translation>完成的县数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="111" />
            <source>Counties failed</source>
            <translation>失败的县数</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="118" />
            <source>Unknown preset: {preset}</source>
            <translation>未知的比对规则：{preset}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="121" />
            <source>A Dask scheduler needs the optional package dask[distributed] (pip install it).</source>
            <translation>使用 Dask 调度器需要可选软件包 dask[distributed]（请用 pip 安装）。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="141" />
            <source>Dask is not installed: the counties run in a local process pool.</source>
            <translation>未安装 Dask：各县在本机进程池中运行。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="146" />
            <source>County {code}: {state} {message}</source>
            <translation>县 {code}：{state} {message}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_atlas.py" line="44" />
            <source>Writes a PDF with one A4 page per change patch: the patch over the context layers, its number, type, area in the chosen unit, region codes, centroid (CGCS2000 longitude/latitude and Gauss-Krüger X/Y), the corner coordinates, a scale bar, a north arrow and blank fields for the verifier.</source>
            <translation>输出 PDF，每个变化图斑一页（A4）：图斑叠加参考图层，标注编号、类型、所选单位的面积、行政区代码、中心点（CGCS2000 经纬度及高斯-克吕格 X/Y）、四至角点坐标、比例尺、指北针及核查人填写栏。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="76" />
            <source>DLBM in the side's codes (default: the farmland codes when the layer is a DLTB layer)</source>
            <translation>该侧图层的地类编码（默认：该侧为地类图斑图层时取耕地编码）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Layer A: DLBM codes to compare (empty: farmland codes if A is a DLTB layer, else all; * = all)</source>
            <translation>图层 A：参与比对的地类编码（留空：A 为地类图斑图层时取耕地编码，否则全部；* 为全部）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/compare/presets.py" line="85" />
            <source>Layer B: DLBM codes to compare (empty: farmland codes if B is a DLTB layer, else all; * = all)</source>
            <translation>图层 B：参与比对的地类编码（留空：B 为地类图斑图层时取耕地编码，否则全部；* 为全部）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="44" />
            <source>The server's signing key {found} is the one set in the settings.</source>
            <translation>服务器签名密钥 {found} 与设置中的一致。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="47" />
            <source>The server's signing key {found} is not the one set in the settings ({pinned}): receipts cannot be trusted. Ask the server administrator.</source>
            <translation>服务器签名密钥 {found} 与设置中的（{pinned}）不一致：回执不可信。请联系服务器管理员。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="52" />
            <source>The server's signing key is {found}; it is pinned at the first submission. Compare it with the fingerprint the administrator gave you.</source>
            <translation>服务器签名密钥为 {found}，首次提交时将被固定。请与管理员提供的指纹核对。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/connection_check.py" line="56" />
            <source>The server's signing key {found} cannot be trusted over an unencrypted connection: enter its fingerprint in the settings, or tick 'Unencrypted test server' for a test server.</source>
            <translation>未加密连接下无法信任服务器签名密钥 {found}：请在设置中填写其指纹，测试服务器可勾选“未加密的测试服务器”。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="106" />
            <source>Certificates (*.pem *.crt *.cer)</source>
            <translation>证书 (*.pem *.crt *.cer)</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="107" />
            <source>An extra CA certificate for the server's TLS certificate (optional)</source>
            <translation>用于验证服务器 TLS 证书的附加 CA 证书（可选）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="280" />
            <source>CA certificate</source>
            <translation>CA 证书</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="112" />
            <source>The fingerprint of the server's receipt-signing key, as given by the server administrator</source>
            <translation>服务器回执签名密钥的指纹，由服务器管理员提供</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="115" />
            <source>Key fingerprint</source>
            <translation>密钥指纹</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="116" />
            <source>Unencrypted test server (http)</source>
            <translation>未加密的测试服务器（http）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="118" />
            <source>Trust the server's signing key over plain http: only for a test server on a closed network</source>
            <translation>通过未加密的 http 信任服务器签名密钥：仅用于封闭网络中的测试服务器</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="279" />
            <source>The key fingerprint must look like SHA256: followed by 64 hexadecimal digits.</source>
            <translation>密钥指纹的格式应为 SHA256: 后接 64 位十六进制数字。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/hsf_progress.py" line="112" />
            <source>Load these layers of the one map first (with their fields): {names}</source>
            <translation>请先加载一张图中的以下图层（含所需字段）：{names}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/hsf_progress.py" line="297" />
            <source>Target: all by {year}</source>
            <translation>目标：{year}年全部建成</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/hsf_progress.py" line="306" />
            <source>PBF built as HSF (%)</source>
            <translation>建成比例（%）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/hsf_progress.py" line="307" />
            <source>Permanent basic farmland built as high-standard farmland</source>
            <translation>永久基本农田建成高标准农田进度</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/core/hsf_progress.py" line="307" />
            <source>total {area}</source>
            <translation>永久基本农田合计 {area}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_year_bar.py" line="37" />
            <source>Stop waiting for the server</source>
            <translation>停止等待服务器</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/dialogs/dlg_settings.py" line="201" />
            <source>Testing the connection</source>
            <translation>正在测试连接</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/docks/dock_submit.py" line="280" />
            <source>Submitting {name}</source>
            <translation>正在提交 {name}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/map_tools/map_tool_mark_patch.py" line="97" />
            <source>Area {area}; township {township}; village {village}</source>
            <translation>面积 {area}；乡镇 {township}；村 {village}</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_deadlines.py" line="75" />
            <source>Loading the exchange calendar</source>
            <translation>正在加载交换日历</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="106" />
            <source>Indicators per county</source>
            <translation>各县指标</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="180" />
            <source>High-standard farmland progress</source>
            <translation>高标准农田建设进度</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="108" />
            <source>The chart shown below</source>
            <translation>下方显示的图表</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="117" />
            <source>Compute</source>
            <translation>计算</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="119" />
            <source>From the loaded one-map layers: permanent basic farmland built as high-standard farmland per year and township, toward the 2035 goal</source>
            <translation>根据已加载的一张图图层，按年度和乡镇统计建成高标准农田的永久基本农田，对照2035年目标</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="179" />
            <source>Computing the high-standard farmland progress…</source>
            <translation>正在计算高标准农田建设进度…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="190" />
            <source>No high-standard farmland with a build year lies on permanent basic farmland.</source>
            <translation>没有带建设年度的高标准农田位于永久基本农田上。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="192" />
            <source>By {year}, {share}% of the permanent basic farmland is high-standard farmland.</source>
            <translation>截至{year}年，{share}%的永久基本农田已建成高标准农田。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_evaluation.py" line="216" />
            <source>Loading the evaluation indicators</source>
            <translation>正在加载评估指标</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="136" />
            <source>Importing the package…</source>
            <translation>正在导入数据包…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_offline.py" line="173" />
            <source>Registering the package with the server…</source>
            <translation>正在向服务器登记数据包…</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_ok_cancel.py" line="15" />
            <source>&amp;OK</source>
            <translation>确定</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/gui/widgets/wdg_province_run.py" line="92" />
            <source>Output GeoPackage, or postgresql://…?schema=… (re-run to resume)</source>
            <translation>输出 GeoPackage，或 postgresql://…?schema=…（再次运行即续跑）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="58" />
            <source>Runs one county preset (PRESET, e.g. pbfnongrain) over every county of SOURCE: a folder of county GeoPackages named by the 6-digit code, or a PostGIS URI (postgresql://user:password@host/db?schema=name) whose tables carry a county_code column. A piece belongs to the county holding its representative point, so nothing is counted twice. Counties run in WORKERS processes (Dask when installed, or the Dask scheduler at SCHEDULER) and are written to OUTPUT as each finishes; running again on the same OUTPUT skips the finished counties. Statistics per county, city and province. OUTPUT_PG (postgresql://user:password@host/db?schema=name), when given, replaces OUTPUT: the same tables in that PostgreSQL schema, the finished counties recorded there.</source>
            <translation>对 SOURCE 中的每个县运行一个县级比对规则（PRESET，如 pbfnongrain）：SOURCE 为按 6 位县级代码命名的县级 GeoPackage 文件夹，或表中带 county_code 列的 PostGIS URI（postgresql://用户:密码@主机/数据库?schema=模式名）。每个图斑归属于其代表点所在的县，因此不会重复统计。各县在 WORKERS 个进程中运行（已安装 Dask 时使用 Dask，或使用 SCHEDULER 处的 Dask 调度器），每完成一个县即写入 OUTPUT；对同一 OUTPUT 再次运行时跳过已完成的县。按县、市、省分别统计。给出 OUTPUT_PG（postgresql://用户:密码@主机/数据库?schema=模式名）时代替 OUTPUT：相同的表写入该 PostgreSQL 模式，已完成的县也记录在其中。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="98" />
            <source>Province result in PostgreSQL (URI with ?schema=, instead of OUTPUT)</source>
            <translation>全省结果写入 PostgreSQL（带 ?schema= 的 URI，代替 OUTPUT）</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/compare_province.py" line="128" />
            <source>Choose an output GeoPackage or a PostgreSQL schema.</source>
            <translation>请选择输出 GeoPackage 或 PostgreSQL 模式。</translation>
        </message>
        <message>
            <location filename="../huijiao_plugin/processing/algorithms/patches_checklist.py" line="43" />
            <source>Writes the field-verification checklist: one row per change patch with number, UUID, type, regions by name and code, the rule by name, area (m² and the chosen unit), centroid, status, result, verifier, date, notes and photo count, plus a sheet with totals per type. Township and village names come from the context layers and the project's region layers.</source>
            <translation>写出外业核查清单：每个变化图斑一行，含编号、唯一标识、类型、行政区名称及代码、规则名称、面积（平方米及所选单位）、中心点、状态、核查结果、核查人、日期、说明和照片数，另有一页按类型汇总。乡镇和村名称取自上下文图层及工程中的行政区图层。</translation>
        </message>
    </context>
</TS>
